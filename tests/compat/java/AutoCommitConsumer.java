import java.time.Duration;
import java.util.Arrays;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;

/**
 * The seed's group consumer with auto-commit ("消费者开发"). main() is the seed's code,
 * unmodified (it polls forever; the test kills it); only the class wrapper, imports and the
 * {@code log} field (Lombok's {@code @Slf4j} in the original) are ours.
 */
public class AutoCommitConsumer {
    private static final SeedLog log = new SeedLog(AutoCommitConsumer.class);

//消费者开发
 public static void main(String[] args) {
        Properties prop = new Properties();
        prop.put("bootstrap.servers","localhost:9092");
        //设置消费者组，组名一样的消费者消费的消息是一样的
        prop.put("group.id","quickstart-events-group");
        //自动提交offeset
        prop.put("enable.auto.commit","true");
        //自动提交时间间隔
        prop.put("auto.commit.interval.ms","1000");
        prop.put("key.deserializer","org.apache.kafka.common.serialization.StringDeserializer");
        prop.put("value.deserializer","org.apache.kafka.common.serialization.StringDeserializer");
        KafkaConsumer<String, String> consumer = new KafkaConsumer<>(prop);
        //订阅主题
        consumer.subscribe(Arrays.asList("quickstart-events"));
        while(true){
            //一次拉取一批数据
            ConsumerRecords<String, String> consumerRecords = consumer.poll(Duration.ofSeconds(5));
            for (ConsumerRecord<String, String> consumerRecord : consumerRecords) {
                String topic = consumerRecord.topic();
                long offset = consumerRecord.offset();
                String key = consumerRecord.key();
                String value = consumerRecord.value();
                log.info("topic:{},offset:{},key:{},value:{}",topic,offset,key,value);
            }
        }
    }
}
